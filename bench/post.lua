-- wrk script for `make bench`: POSTs the send request bodies that bench/run.py wrote, one
-- JSON body per line of $BENCH_BODIES, round-robin, with the API key of $BENCH_KEY, to
-- $BENCH_PATH. The same script drives nginx and Postern, so both see the same requests.
-- done() prints one line "BENCHJSON {...}" that run.py reads.

local bodies_file = os.getenv("BENCH_BODIES")
local key = os.getenv("BENCH_KEY") or ""
local path = os.getenv("BENCH_PATH") or "/v5/mail/send"

local requests = {}
local n = 0
local i = 0

function init(args)
	local f = assert(io.open(bodies_file, "r"))
	for line in f:lines() do
		if #line > 0 then
			n = n + 1
			requests[n] = wrk.format("POST", path, {
				["Content-Type"] = "application/json",
				["Authorization"] = "Bearer " .. key,
			}, line)
		end
	end
	f:close()
	assert(n > 0, "no request bodies in " .. tostring(bodies_file))
end

function request()
	i = i % n + 1
	return requests[i]
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
		'"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, ' ..
		'"err_timeout": %d, "lat_mean_us": %.1f, "lat_max_us": %d, ' ..
		'"p50_us": %d, "p75_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d}\n',
		summary.requests, summary.duration, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout,
		latency.mean, latency.max,
		latency:percentile(50), latency:percentile(75), latency:percentile(90),
		latency:percentile(99), latency:percentile(99.9)))
end
