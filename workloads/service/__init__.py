"""The JupyterLab service's one authentication rule: run by the image's config, pasted by Ansible."""
