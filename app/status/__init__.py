"""The status page's static assets (HTML, CSS, JavaScript), served by the app itself.

Holds files only (``static/``), which routers/status.py serves; no code to import.
"""
