async def test_health_and_ready(client):
    assert (await client.get("/health")).text == "ok"
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"database": "ok", "redis": "ok"}
