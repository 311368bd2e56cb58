"""The status page's static assets (HTML, CSS, JavaScript), served by the app itself."""
