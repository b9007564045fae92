-- wrk script: the cheapest authenticated GraphQL request ({ __typename }), to measure the
-- per-request floor of HTTP + auth + GraphQL without the ledger.
-- usage: wrk ... -s bench/floor.lua URL -- <loyalty_ids_file> <tag>   (arguments unused)
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad_status = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
  wrk.body = '{"query":"{ __typename }"}'
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"__typename"', 1, true) then ok = ok + 1 else bad_status = bad_status + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad_status")
  end
  io.write(string.format('BENCH {"counts":{"ok":%d,"user_errors":0,"bad_status":%d},"codes":{},"samples":[]}\n',
    total_ok, total_bad))
end
