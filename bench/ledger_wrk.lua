-- The part of the ledger wrk scripts that earn.lua and redeem.lua share: they define the
-- globals `query` (the GraphQL document) and `variables(lid, key)` (its JSON variables),
-- then load this file. Each request picks a random member from the ids file and a unique
-- idempotency key "<tag>-<thread>-<counter>"; done() prints one BENCH {...} JSON line.
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  ids = {}
  for line in io.lines(args[1]) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  tag = args[2]
  counter = 0
  ok = 0
  user_errors = 0
  bad_status = 0
  codes = {}
  samples = {}
  math.randomseed(os.time() * 1000 + tid * 7919)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function request()
  counter = counter + 1
  local lid = ids[math.random(#ids)]
  local key = string.format("%s-%d-%d", tag, tid, counter)
  local body = string.format('{"query":"%s","variables":%s}', query, variables(lid, key))
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    local c = "HTTP_" .. status
    codes[c] = (codes[c] or 0) + 1
    if #samples < 3 then samples[#samples + 1] = string.sub(body, 1, 300) end
  elseif string.find(body, '"userErrors":[]', 1, true) and not string.find(body, '"errors":', 1, true) then
    ok = ok + 1
    if #samples < 1 then samples[#samples + 1] = string.sub(body, 1, 300) end
  else
    user_errors = user_errors + 1
    local c = string.match(body, '"code":"([%w_]+)"') or "UNKNOWN"
    codes[c] = (codes[c] or 0) + 1
    if #samples < 3 then samples[#samples + 1] = string.sub(body, 1, 300) end
  end
end

local function json_string(s)
  return '"' .. string.gsub(string.gsub(s, '\\', '\\\\'), '"', '\\"') .. '"'
end

function done(summary, latency, requests)
  local total = {ok = 0, user_errors = 0, bad_status = 0}
  local all_codes = {}
  local all_samples = {}
  for _, thread in ipairs(threads) do
    total.ok = total.ok + thread:get("ok")
    total.user_errors = total.user_errors + thread:get("user_errors")
    total.bad_status = total.bad_status + thread:get("bad_status")
    for c, n in pairs(thread:get("codes")) do all_codes[c] = (all_codes[c] or 0) + n end
    for _, s in ipairs(thread:get("samples")) do all_samples[#all_samples + 1] = json_string(s) end
  end
  local parts = {}
  for c, n in pairs(all_codes) do parts[#parts + 1] = string.format('"%s":%d', c, n) end
  io.write(string.format('BENCH {"counts":{"ok":%d,"user_errors":%d,"bad_status":%d},"codes":{%s},"samples":[%s]}\n',
    total.ok, total.user_errors, total.bad_status, table.concat(parts, ","), table.concat(all_samples, ",")))
end
