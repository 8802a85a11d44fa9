#!/bin/bash
# user_init for {{ kiln.environment }}: {{ kiln.application }} {{ kiln.version }} ({{ kiln.commit }})
set -euo pipefail
environment={{ kiln.environment }}
log_level={{ LOG_LEVEL }}
mkdir -p /etc/demo
printf 'ENVIRONMENT=%s\nLOG_LEVEL=%s\n' "$environment" "$log_level" > /etc/demo/env
# No restart: the service reads /etc/demo/env at every request (app/server.py, settings()). It started at boot,
# before cloud-init's final stage runs this script, and kiln-rotate's health gate may already have seen it pass;
# a restart now closes its port for a moment, and the gate fails an instance that turns unhealthy after passing.
