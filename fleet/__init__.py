"""`make fleet-smoke`: the smoke test on every host of an Ansible inventory, and one report comparing them.

Ansible is the engine (ansible/fleet.yml runs the doctor and the smoke test on each host and fetches the
reports); this package starts it and reads what came back. cli.py (the command line and the run's
folder), inventory.py (the hosts Ansible will visit), playbook.py (the ansible-playbook run), host.py (one
host's outcome from its folder), drift.py (fingerprint fields that differ), outliers.py (figures far from
their peers' median), baseline.py (against an earlier fleet.json), report.py (fleet.json and the terminal
summary), page.py (fleet.html), junit.py (junit.xml). No framework: it runs in Ansible's environment.
"""
