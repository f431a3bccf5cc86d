-- Loaded by post.lua and stream.lua where $WRK_PROSE is set: every request then sends a prompt that no request
-- sent before, as a load test of random prompts does. "@PROMPT@" in $WRK_BODY becomes a number of this thread's
-- own, then $WRK_WORDS words of $WRK_PROSE (words, JSON-escaped already) from a random place. One string cut
-- once a request: wrk's core stays far from full at a few thousand requests a second.
local words = {}
for word in os.getenv("WRK_PROSE"):gmatch("%S+") do
  words[#words + 1] = word
end
local want = tonumber(os.getenv("WRK_WORDS"))
local text, starts = {}, {}
local at = 1
for i = 1, #words + want + 1 do  -- the prose again after its end, so that any start has its words after it
  local word = words[(i - 1) % #words + 1]
  starts[i] = at
  text[i] = word
  at = at + #word + 1
end
text = table.concat(text, " ")
local head, tail = wrk.body:match("^(.*)@PROMPT@(.*)$")
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local thread = math.random(1e9)
local sent = 0

function request()
  sent = sent + 1
  local first = math.random(#words)
  local prompt = thread .. "." .. sent .. ": " .. text:sub(starts[first], starts[first + want] - 2)
  return wrk.format(nil, nil, nil, head .. prompt .. tail)
end
