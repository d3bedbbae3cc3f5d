-- Picks a random stored file per request from the ids file (one id a line).
local ids = {}
for line in io.lines(os.getenv("IDS") or "/tmp/bench/ids.txt") do
  ids[#ids + 1] = "/" .. line
end
math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
request = function()
  return wrk.format("GET", ids[math.random(#ids)])
end
done = function(summary, latency, requests)
  io.write(string.format("errors: connect %d read %d write %d status %d timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
