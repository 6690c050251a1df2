-- Each request uses a fresh line of $BENCH_REQS (scenario 6: a fresh planned
-- meeting per outcome). Thread t of n takes lines t, t+n, t+2n, ...
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local C = require("common")
local reqs, mine, pos
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
setup = C.setup
done = C.done
function init(args)
  reqs = C.load(os.getenv("BENCH_REQS"))
  mine = {}
  for i = tid, #reqs, nthreads do mine[#mine + 1] = reqs[i] end
  pos = 0
  bad = 0
end
function request()
  pos = pos + 1
  if pos > #mine then pos = 1; bad = bad + 1; wrk.thread:set("bad", bad) end  -- exhausted: will 409
  local r = mine[pos]
  local h = C.headers(r[3], {["Content-Type"] = "application/json"})
  return wrk.format(r[1], r[2], h, r[4])
end
