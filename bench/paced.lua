-- wrk script for figure 6 of `make bench`: the requests of post.lua, paced. wrk2 is not in
-- Debian, so each wrk thread keeps its own schedule of $BENCH_RATE / $BENCH_THREADS
-- requests per second and delay() holds every request until its slot. The total offered
-- rate is $BENCH_RATE as long as the server keeps up (at half its measured maximum it
-- does). Unlike wrk2, latency is timed from the actual send, not from the slot, so a
-- stall is under-reported (coordinated omission); run.py states this in the results.

dofile(os.getenv("BENCH_DIR") .. "/post.lua")

local ffi = require("ffi")
ffi.cdef [[
	typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
	int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
	ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
	return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local rate = tonumber(os.getenv("BENCH_RATE")) / tonumber(os.getenv("BENCH_THREADS"))
local interval = 1000 / rate -- ms between two requests of this thread
local start = nil
local k = 0

function delay()
	local t = now_ms()
	if not start then
		start = t
	end
	k = k + 1
	local due = start + k * interval
	if due <= t then
		return 0
	end
	return due - t
end
