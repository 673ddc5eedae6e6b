-- wrk script of bench/throughput.py: POSTs pre-signed third-party webhooks, cycling through a file of
-- `signature<TAB>body` lines. Arguments (after `--`): the webhook path, the signature header, the file.
-- Each thread starts at its own place in the file; `done` prints the run's figures as one JSON line.

local threads = 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  path, header, file = args[1], args[2], args[3]
  bodies, signatures = {}, {}
  for line in io.lines(file) do
    local tab = line:find("\t", 1, true)
    signatures[#signatures + 1] = line:sub(1, tab - 1)
    bodies[#bodies + 1] = line:sub(tab + 1)
  end
  index = (offset * 7919) % #bodies
end

function request()
  index = index % #bodies + 1
  local headers = {["Content-Type"] = "application/json", [header] = signatures[index]}
  return wrk.format("POST", path, headers, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
