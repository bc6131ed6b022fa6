"""``crmwatch serve``: the web console for responders and the privacy team.

Server-rendered pages over the same store and the same stage functions as the CLI
(``incidents``, ``scope.results``, ``notify.package``, ``posture.results``, ``stats``,
``evaluate``): the console adds no query of its own. It sends no script at all, so its
Content-Security-Policy forbids every script, and every value from a log, rule, snapshot or
file name reaches the page through Jinja2's escaping with control and direction characters
made visible (:func:`crmwatch.markup.visible`).
"""
