#!/bin/sh
# QSM Webhooks CGI wrapper. suexec strips SetEnv variables, so this names the configuration and
# runs the binary, both kept outside the web root. Edit the path to your install root.
WEBHOOKS_ENV=/home/USER/webhooks/.env exec /home/USER/webhooks/bin/webhooks-cgi
