"""The room panel's static web app (HTML, CSS, JavaScript, service worker, manifest).

Holds files only (``static/``), which routers/panel.py serves on masters; no code to import.
"""
