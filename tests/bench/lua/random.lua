-- Random requests from the file in $BENCH_REQS (scenarios 1-4, 7 and /healthz).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local C = require("common")
local reqs
setup = C.setup
done = C.done
function init(args)
  reqs = C.load(os.getenv("BENCH_REQS"))
  math.randomseed(tid * 7919 + os.time())
end
function request()
  local r = reqs[math.random(#reqs)]
  local h = nil
  if r[3] ~= "" then h = C.headers(r[3]) end
  if r[4] ~= "" then
    h = h or {}
    h["Content-Type"] = "application/json"
    return wrk.format(r[1], r[2], h, r[4])
  end
  return wrk.format(r[1], r[2], h, nil)
end
