"""Router processes' heartbeats in MongoDB (`router_instances`): who is alive to share the input partitions."""

from omni_router.adapters.documents import Database

INSTANCES = "router_instances"


class MongoRouterInstances:
    def __init__(self, db: Database) -> None:
        self._instances = db[INSTANCES]

    async def beat(self, instance: str, now: float) -> None:
        await self._instances.update_one({"_id": instance}, {"$set": {"seen_at": now}}, upsert=True)

    async def live(self, since: float) -> list[str]:
        return [doc["_id"] async for doc in self._instances.find({"seen_at": {"$gt": since}}, {"_id": 1})]

    async def forget(self, before: float) -> None:
        await self._instances.delete_many({"seen_at": {"$lt": before}})

    async def leave(self, instance: str) -> None:
        await self._instances.delete_one({"_id": instance})
