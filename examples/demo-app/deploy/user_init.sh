#!/bin/bash
# user_init for {{ kiln.environment }}: {{ kiln.application }} {{ kiln.version }} ({{ kiln.commit }})
set -euo pipefail
environment={{ kiln.environment }}
log_level={{ LOG_LEVEL }}
mkdir -p /etc/demo
printf 'ENVIRONMENT=%s\nLOG_LEVEL=%s\n' "$environment" "$log_level" > /etc/demo/env
systemctl restart demo
