-- wrk script of internal/systest TestLoad: wrk connects to Squid and asks
-- it for absolute URLs of the origin (a proxy request), rotating over
-- the entries of SYSTEST_MIX, one per line: "PATH" or "PATH Header: value".
-- Each thread counts the responses that are not 2xx; done() prints one
-- line, "SYSTEST key=value ...", that the test parses.

non2xx = 0
local reqs = {}
local n = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local origin = os.getenv("SYSTEST_ORIGIN")
  local host = origin:match("^http://([^/]+)")
  for line in os.getenv("SYSTEST_MIX"):gmatch("[^\n]+") do
    local path, hdr = line:match("^(%S+)%s*(.*)$")
    local headers = { Host = host }
    if hdr ~= "" then
      local k, v = hdr:match("^([^:]+):%s*(.*)$")
      headers[k] = v
    end
    table.insert(reqs, wrk.format("GET", origin .. path, headers))
  end
  -- threads start at different places in the rotation
  n = (id or 0) * 3
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format(
    "SYSTEST requests=%d duration_us=%d bytes=%d non2xx=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
