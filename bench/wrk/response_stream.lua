-- wrk script: streaming Responses API requests, every response checked. A response counts as good when it is
-- a 200 holding exactly $WRK_CHUNKS text delta events and ends with its last event (the API sends no [DONE]):
-- response.completed, or response.incomplete where the answer ran into max_output_tokens.
-- done() prints one line: STREAMS good=<n> bad=<n> content=<text deltas in good responses>.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
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
  local _, events = body:gsub("event: response.output_text.delta\n", "")
  local ended = body:find("event: response.completed\n", 1, true)
    or body:find("event: response.incomplete\n", 1, true)
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
