"""The web side: the only importer of tornado, jupyter_server and Voila."""
