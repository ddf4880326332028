#!/usr/bin/env bash
# Runs the worker locally: installs tools if needed, creates a local SCIM token (kept in
# .dev.vars, git-ignored) if there is none, applies the D1 migrations to the local database,
# prints the Tenant URL and Secret Token to paste into an identity provider, and starts
# `wrangler dev` on http://127.0.0.1:8787. `SCIM_STORAGE=durable-object scripts/dev.sh` keeps
# tenants' directories in local SQLite-backed Durable Objects instead of D1 (docs/DEPLOY.md).
#
# Options (environment variables), for a second instance beside the usual one, or a test that
# must not touch the developer's token or database (tests/browser/authorize_dev.test.mjs):
#   PORT=8788              listen there instead of 8787
#   DEV_VARS=path          keep SCIM_TOKEN and ADMIN_TOKEN in this file instead of .dev.vars
#                          (created if missing; values already in it are kept)
#   DEV_STATE=dir          keep the local D1 database (and other local state) in this directory
#                          instead of wrangler's .wrangler/state
#   DEV_PREBUILT=1         serve build/ as it is instead of rebuilding the wasm (scripts/build.sh)
#                          on start; fails if build/ has not been built
# Arguments are passed on to `wrangler dev`.
set -euo pipefail
# Relative DEV_VARS and DEV_STATE are the caller's, resolved before moving to the checkout.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
vars=""
[ -z "${DEV_VARS:-}" ] || vars=$(absolute "$DEV_VARS")
state=""
[ -z "${DEV_STATE:-}" ] || state=$(absolute "$DEV_STATE")
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
port="${PORT:-8787}"
storage="${SCIM_STORAGE:-d1}"
case "$storage" in
  d1 | durable-object) ;;
  *) echo "SCIM_STORAGE must be d1 or durable-object, not '$storage'" >&2; exit 2 ;;
esac
vars_file="${vars:-.dev.vars}"

bash scripts/setup.sh

if [ "${DEV_PREBUILT:-}" = 1 ]; then
  if [ ! -f build/entry.mjs ] || [ ! -f build/index_bg.wasm ]; then
    echo "DEV_PREBUILT=1 but build/ is not built: run bash scripts/build.sh first" >&2
    exit 1
  fi
  # wrangler.toml's [build] runs scripts/build.sh on start and on changes under src/; this
  # makes those runs keep build/ as it is (a no-op build still takes over a minute).
  export SCIM_PREBUILT=1
fi

# Adds NAME=<value> to the vars file unless NAME is there already (the file is only readable
# by its owner).
keep_secret() {
  if [ ! -f "$vars_file" ] || ! grep -q "^$1=" "$vars_file"; then
    (umask 077 && echo "$1=$2$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >> "$vars_file")
    chmod 600 "$vars_file"
  fi
}
keep_secret SCIM_TOKEN ""
token=$(grep '^SCIM_TOKEN=' "$vars_file" | head -n1 | cut -d= -f2-)
# The admin API's token (tenants, issued tokens: `npm run admin -- help`), also kept there.
keep_secret ADMIN_TOKEN admin_

# wrangler reads .dev.vars beside wrangler.toml unless given an env file (then only that one).
wrangler_opts=()
if [ -n "$state" ]; then wrangler_opts+=(--persist-to "$state"); fi
dev_opts=("${wrangler_opts[@]}")
if [ -n "$vars" ]; then dev_opts+=(--env-file "$vars"); fi
# How to reach the admin API of this instance with `npm run admin` (defaults: 8787, .dev.vars).
admin_env=""
if [ "$port" != 8787 ]; then admin_env="SCIM_ADMIN_URL=http://127.0.0.1:${port} "; fi
if [ -n "$vars" ]; then admin_env="${admin_env}DEV_VARS=${vars} "; fi

export WRANGLER_SEND_METRICS=false
npx --no-install wrangler d1 migrations apply DB --local "${wrangler_opts[@]}" >/dev/null

cat <<MSG

  SCIM endpoint running locally
  Tenant URL:    http://127.0.0.1:${port}/scim/v2
  Secret Token:  ${token}
  Storage:       ${storage}  (SCIM_STORAGE=d1|durable-object scripts/dev.sh)

  Try:  curl -H "Authorization: Bearer ${token}" 'http://127.0.0.1:${port}/scim/v2/Users?filter=userName%20eq%20%22test%22'

  Admin console: http://127.0.0.1:${port}/admin  (sign in with ADMIN_TOKEN from ${vars_file})
  More tenants (admin API at /admin/api, its ADMIN_TOKEN is in ${vars_file}):
        ${admin_env}npm run admin -- tenant create acme && ${admin_env}npm run admin -- token issue acme --label Entra
  Entra's Authorize button (OAuth code grant, docs/ENTRA.md): an OAuth app, then a setup link
  for the IT admin of a tenant, whose browser approves at /oauth/authorize:
        ${admin_env}npm run admin -- oauth-app add --name Local && ${admin_env}npm run admin -- setup-link create acme
  Run the daily cron (prunes the provisioning log) once:
        curl 'http://127.0.0.1:${port}/cdn-cgi/handler/scheduled?cron=23+3+*+*+*'

MSG
# Webhook receivers on this machine may be plain http://127.0.0.1 (never in a deployment).
exec npx --no-install wrangler dev --ip 127.0.0.1 --port "$port" "${dev_opts[@]}" \
  --var WEBHOOK_ALLOW_LOOPBACK_HTTP:1 --var "SCIM_STORAGE:${storage}" "$@"
