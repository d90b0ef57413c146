"""gunicorn's settings for every way the portal is served here (make run, compose, tests and
benches all start gunicorn from the repository root, where gunicorn reads this file).

gunicorn 27 opens a control socket by default at ~/.gunicorn/gunicorn.ctl: one path for every
gunicorn of the user, so a second stack on the machine took the first one's socket over, and
anything that can reach it can tell the workers what to do. The portal does not use it."""

control_socket_disable = True
