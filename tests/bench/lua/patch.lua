-- Scenario 5: PATCH /v1/actions/{id} with a real If-Match. Thread t owns the
-- lines t, t+n, ... of $BENCH_REQS (METHOD \t PATH \t TOKEN \t VERSION); it
-- never has two requests in flight for one action, and it takes the new
-- version from each answer (the body's "version", the same as its ETag).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local C = require("common")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local mine, version, busy, byid, pos, n, bad
setup = C.setup
done = C.done
function init(args)
  local reqs = C.load(os.getenv("BENCH_REQS"))
  mine, version, busy, byid = {}, {}, {}, {}
  for i = tid, #reqs, nthreads do
    local r = reqs[i]
    mine[#mine + 1] = r
    local id = r[2]:match("/v1/actions/(.*)$")
    version[id] = tonumber(r[4])
    byid[id] = r
  end
  pos, n, bad = 0, 0, 0
end
function request()
  local r, id
  for _ = 1, #mine do
    pos = pos % #mine + 1
    id = mine[pos][2]:match("/v1/actions/(.*)$")
    if not busy[id] then r = mine[pos]; break end
  end
  busy[id] = true
  n = n + 1
  local h = C.headers(r[3], {["Content-Type"] = "application/json",
                             ["If-Match"] = '"' .. version[id] .. '"'})
  return wrk.format("PATCH", r[2], h, '{"title": "Bench change ' .. n .. '"}')
end
function response(status, headers, body)
  local id = body:match('"id"%s*:%s*"([0-9a-f%-]+)"')
  if status == 200 and id then
    version[id] = tonumber(body:match('"version"%s*:%s*(%d+)'))
    busy[id] = nil
  else
    bad = bad + 1
    wrk.thread:set("bad", bad)
    -- a 412 names the current version: "the action is at version N"
    local v = body:match("at version (%d+)")
    for k, _ in pairs(busy) do
      if v then version[k] = tonumber(v) end
      busy[k] = nil
      break
    end
  end
end
