#!/usr/bin/env bash
# Runs the worker locally: installs tools if needed, creates a local SCIM token (kept in
# .dev.vars, git-ignored) if there is none, applies the D1 migrations to the local database,
# prints the Tenant URL and Secret Token to paste into an identity provider, and starts
# `wrangler dev` on http://127.0.0.1:8787. `SCIM_STORAGE=durable-object scripts/dev.sh` keeps
# tenants' directories in local SQLite-backed Durable Objects instead of D1 (docs/DEPLOY.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${PORT:-8787}"
storage="${SCIM_STORAGE:-d1}"
case "$storage" in
  d1 | durable-object) ;;
  *) echo "SCIM_STORAGE must be d1 or durable-object, not '$storage'" >&2; exit 2 ;;
esac

bash scripts/setup.sh

if [ ! -f .dev.vars ] || ! grep -q '^SCIM_TOKEN=' .dev.vars; then
  token=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
  echo "SCIM_TOKEN=$token" >> .dev.vars
  chmod 600 .dev.vars
fi
token=$(grep '^SCIM_TOKEN=' .dev.vars | head -n1 | cut -d= -f2-)
# The admin API's token (tenants, issued tokens: `npm run admin -- help`), also kept in .dev.vars.
if ! grep -q '^ADMIN_TOKEN=' .dev.vars; then
  echo "ADMIN_TOKEN=admin_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >> .dev.vars
  chmod 600 .dev.vars
fi

export WRANGLER_SEND_METRICS=false
npx --no-install wrangler d1 migrations apply DB --local >/dev/null

cat <<MSG

  SCIM endpoint running locally
  Tenant URL:    http://127.0.0.1:${port}/scim/v2
  Secret Token:  ${token}
  Storage:       ${storage}  (SCIM_STORAGE=d1|durable-object scripts/dev.sh)

  Try:  curl -H "Authorization: Bearer ${token}" 'http://127.0.0.1:${port}/scim/v2/Users?filter=userName%20eq%20%22test%22'

  Admin console: http://127.0.0.1:${port}/admin  (sign in with ADMIN_TOKEN from .dev.vars)
  More tenants (admin API at /admin/api, its ADMIN_TOKEN is in .dev.vars):
        npm run admin -- tenant create acme && npm run admin -- token issue acme --label Entra
  Run the daily cron (prunes the provisioning log) once:
        curl 'http://127.0.0.1:${port}/cdn-cgi/handler/scheduled?cron=23+3+*+*+*'

MSG
# Webhook receivers on this machine may be plain http://127.0.0.1 (never in a deployment).
exec npx --no-install wrangler dev --ip 127.0.0.1 --port "$port" --var WEBHOOK_ALLOW_LOOPBACK_HTTP:1 \
  --var "SCIM_STORAGE:${storage}" "$@"
