-- wrk script: streaming chat completions, every response checked. A response counts as good when it is a
-- 200 holding exactly $WRK_CHUNKS content events, a usage chunk ("choices":[] with "usage") and [DONE].
-- done() prints one line: STREAMS good=<n> bad=<n> content=<content events in good responses>.
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
  local _, events = body:gsub('"delta":{"content"', "")
  local usage = body:find('"choices":[],"usage":{', 1, true)
  local done = body:find("data: [DONE]", 1, true)
  if events == expected and usage and done then
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
