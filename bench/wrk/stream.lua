-- wrk script: streaming requests, every response checked. A response counts as good when it is a 200 holding
-- exactly $WRK_CHUNKS events that carry a token ($WRK_COUNTED marks one), every mark in $WRK_ALL and at least
-- one of $WRK_ANY (marks separated by "|"). The defaults are a chat completion's: its content events, the
-- usage chunk ("choices":[] with "usage") and [DONE]. $WRK_HEADER ("Name: value") adds a header; $WRK_PROSE, a
-- prompt of its own for every request (distinct.lua).
-- done() prints one line: STREAMS good=<n> bad=<n> content=<counted events in good responses>.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("WRK_BODY")
local name, value = (os.getenv("WRK_HEADER") or ""):match("^([^:]+):%s*(.+)$")
if name then
  wrk.headers[name] = value
end
if os.getenv("WRK_PROSE") then
  dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "distinct.lua")
end
local expected = tonumber(os.getenv("WRK_CHUNKS") or "0")
local counted = os.getenv("WRK_COUNTED") or '"delta":{"content"'

local function marks(list)
  local found = {}
  for mark in (list or ""):gmatch("[^|]+") do
    table.insert(found, mark)
  end
  return found
end

local all = marks(os.getenv("WRK_ALL") or '"choices":[],"usage":{|data: [DONE]')
local any = marks(os.getenv("WRK_ANY"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  good, bad, content = 0, 0, 0
end

local function count(body, mark)
  local n, at = 0, 1
  while true do
    local found = body:find(mark, at, true)
    if not found then
      return n
    end
    n, at = n + 1, found + #mark
  end
end

local function holds(body)
  for _, mark in ipairs(all) do
    if not body:find(mark, 1, true) then
      return false
    end
  end
  if #any == 0 then
    return true
  end
  for _, mark in ipairs(any) do
    if body:find(mark, 1, true) then
      return true
    end
  end
  return false
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local events = count(body, counted)
  if events == expected and holds(body) then
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
