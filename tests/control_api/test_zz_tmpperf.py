import asyncio, time
from tests.control_api.conftest import Api
from control_api.cache import READ_CACHE

async def test_perf(api: Api) -> None:
    owner = await api.user()
    viewers = [await api.user() for _ in range(5)]
    rooms = [(await api.call("POST", "/rooms", owner, json={}))[1]["room"] for _ in range(5)]
    cache = api.app._subapps[0][READ_CACHE]
    t = time.perf_counter(); c = time.process_time()
    async def one(i):
        s, _ = await api.call("POST", f"/rooms/{rooms[i%5]}/token", viewers[i%5], json={"role": "viewer"})
        assert s == 200
    for r in range(150):
        await asyncio.gather(*(one(i) for i in range(10)))
    print("RESULT total", time.perf_counter() - t, "cpu", time.process_time() - c, "hits", cache.hits, cache.misses)
