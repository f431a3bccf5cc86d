-- wrk script: one POST, its JSON body from $WRK_BODY; with $WRK_CLOSE set, every request on a new connection;
-- $WRK_HEADER ("Name: value") adds a header (Anthropic's anthropic-version); $WRK_PROSE, a prompt of its own for
-- every request (distinct.lua).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local name, value = (os.getenv("WRK_HEADER") or ""):match("^([^:]+):%s*(.+)$")
if name then
  wrk.headers[name] = value
end
wrk.body = os.getenv("WRK_BODY")
  or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there!"}],"max_tokens":16}'
if os.getenv("WRK_CLOSE") then
  wrk.headers["Connection"] = "close"
end
if os.getenv("WRK_PROSE") then
  dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") .. "distinct.lua")
end
