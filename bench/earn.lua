-- wrk script: one earnPoints mutation per request, a random member from the ids file,
-- a unique idempotency key "<tag>-<thread>-<counter>".
-- usage: wrk ... -s bench/earn.lua URL -- <loyalty_ids_file> <tag>
query = "mutation($lid:String!,$amt:Int!,$k:String!){ earnPoints(input:{loyaltyId:$lid,purchaseAmountMinor:$amt,"
  .. "idempotencyKey:$k}){ transaction{ id points } member{ balance } userErrors{ code } } }"

function variables(lid, key)
  return string.format('{"lid":"%s","amt":%d,"k":"%s"}', lid, math.random(100, 10000), key)
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "ledger_wrk.lua")
