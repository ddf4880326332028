-- wrk script shared by every benchmarked operation (one wrk thread: -t1).
-- Arguments after `--`: TOKEN MODE METHOD LINES_FILE [BODY_FILE] [PREFIX] [HOST]
--   LINES_FILE: one request per line, `PATH`, `PATH<TAB>VALUE` or `PATH<TAB>VALUE<TAB>TOKEN`
--               (a line's own bearer token: many tenants in one run), used in order and cycled
--               (MODE "cycle") or used once each, stopping the thread when they run out
--               (MODE "once": DELETE, whose targets exist only once).
--   BODY_FILE:  request body template ("-" for none): `__N__` becomes PREFIX..counter (the
--               counter is unique within a run; bench.mjs gives every run its own PREFIX),
--               `__V__` the line's VALUE.
--   HOST:       the Host header ("-" or absent: wrk's own), which routes the request to one
--               worker of several in one workerd (the Durable Object backend's instance).
--   PACE_MS:    a pause after each response on each connection ("-" or absent: none), so a
--               run offers a bounded rate instead of saturating the server (noisy neighbour).
-- done() prints one `WRKJSON {...}` line that bench.mjs parses.
local token, mode, method, prefix, body_tpl, host
local lines, n, i, counter = {}, 0, 0, 0

function init(args)
  token, mode, method = args[1], args[2], args[3]
  for l in io.lines(args[4]) do
    lines[#lines + 1] = l
  end
  n = #lines
  if args[5] and args[5] ~= "-" then
    local f = assert(io.open(args[5], "rb"))
    body_tpl = f:read("*a")
    f:close()
  end
  prefix = args[6] or ""
  if args[7] and args[7] ~= "-" then
    host = args[7]
  end
  if args[8] and args[8] ~= "-" then
    local pace = tonumber(args[8])
    -- Defined only when asked for: wrk calls delay() before every request if it exists.
    delay = function() return pace end
  end
end

function request()
  if i >= n then
    if mode == "once" then
      wrk.thread:stop()
    end
    i = 0
  end
  i = i + 1
  counter = counter + 1
  local path, value, own = lines[i]:match("^([^\t]*)\t?([^\t]*)\t?(.*)$")
  local headers = { ["Authorization"] = "Bearer " .. (own ~= "" and own or token) }
  if host then
    headers["Host"] = host
  end
  local body = nil
  if body_tpl then
    local unique = prefix .. counter
    body = body_tpl:gsub("__N__", unique)
    body = body:gsub("__V__", value)
    headers["Content-Type"] = "application/scim+json"
  end
  return wrk.format(method, path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
