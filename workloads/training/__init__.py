"""What the recipes share with the framework: backend and seeding, the recorder, fit, pipelines."""
