-- wrk script: one redeemGiftCard mutation per request (one minor unit), a random card from the
-- codes file (the ids file of ledger_wrk.lua), a unique idempotency key "<tag>-<thread>-<counter>".
-- usage: wrk ... -s bench/gift_spend.lua URL -- <gift_codes_file> <tag>
query = "mutation($c:String!,$a:Int!,$k:String!){ redeemGiftCard(input:{code:$c,amountMinor:$a,"
  .. "idempotencyKey:$k}){ giftCard{ balanceMinor } transactionId userErrors{ code } } }"

function variables(code, key)
  return string.format('{"c":"%s","a":1,"k":"%s"}', code, key)
end

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "ledger_wrk.lua")
