-- wrk script: one redeemPoints mutation per request (1-20 points), a random member from the
-- ids file, a unique idempotency key "<tag>-<thread>-<counter>".
-- usage: wrk ... -s bench/redeem.lua URL -- <loyalty_ids_file> <tag>
query = "mutation($lid:String!,$p:Int!,$k:String!){ redeemPoints(input:{loyaltyId:$lid,points:$p,"
  .. "idempotencyKey:$k}){ transaction{ id } member{ balance } userErrors{ code } } }"

function variables(lid, key)
  return string.format('{"lid":"%s","p":%d,"k":"%s"}', lid, math.random(1, 20), key)
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "ledger_wrk.lua")
