"""The household's web page: server-rendered pages under `/` of the recognizer's HTTP server (docs/web.md).

Every page and every button calls the same operations and queries as the JSON API (`recognizer_node.
operations`, `recognizer_node.queries`, `recognizer_node.http.context.gallery_command`); this package only
signs people in, renders HTML and keeps thumbnails.
"""
