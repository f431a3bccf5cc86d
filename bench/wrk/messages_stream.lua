-- wrk script: streaming Anthropic Messages requests, every response checked. A response counts as good when it
-- is a 200 holding exactly $WRK_CHUNKS content_block_delta events and ending with message_stop.
-- done() prints one line: STREAMS good=<n> bad=<n> content=<text deltas in good responses>.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = os.getenv("WRK_BODY")
local expected = tonumber(os.getenv("WRK_CHUNKS") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good, bad, content = 0, 0, 0
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local _, events = body:gsub("event: content_block_delta\n", "")
  local ended = body:find("event: message_stop\n", 1, true)
  if events == expected and ended then
    good = good + 1
    content = content + events
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local g, b, c = 0, 0, 0
  for _, thread in ipairs(threads) do
    g = g + thread:get("good")
    b = b + thread:get("bad")
    c = c + thread:get("content")
  end
  io.write(string.format("STREAMS good=%d bad=%d content=%d\n", g, b, c))
end
