"""What a poll reads and writes, and stories read back and pruned, in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from bot.core.identity import KeyKind
from bot.core.latency import SourceSighting
from bot.core.models import DeliveryStatus, FeedState, Sighting, StoredStory
from bot.core.store import (
    WINDOW_HITS_PER_KEY,
    IngestSession,
    KeyHit,
    PollOutcome,
    StorageError,
    StoryRef,
    SupportsIngestBatch,
)
from storage.memory.base import (
    CardRow,
    MemoryBase,
    StoryRow,
    as_stored,
    limited,
    moment,
    nocase,
    ts,
)


class IngestTables(MemoryBase):
    async def find_keys(
        self, keys: Sequence[int], *, since: datetime | None = None
    ) -> list[KeyHit]:
        hits: list[KeyHit] = []
        for key in sorted(set(keys)):
            holders = sorted(self._keys.get(key, {}).items())
            if since is not None:
                holders = [h for h in holders if h[1][1] >= ts(since)]
                holders = holders[::-1][:WINDOW_HITS_PER_KEY]  # the newest stories
            hits += [KeyHit(key, kind, sid, moment(at)) for sid, (kind, at) in holders]
        return hits

    async def load_stories(self, ids: Sequence[int]) -> dict[int, StoredStory]:
        return {i: self._stories[i].stored() for i in sorted(set(ids)) if i in self._stories}

    async def story_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        found = (self._stories[i] for i in sorted(set(ids)) if i in self._stories)
        return {row.id: (row.story.title, row.story.summary) for row in found}

    async def delivery_targets(self, story_ids: Sequence[int]) -> dict[int, set[str]]:
        return {i: set(self._cards[i]) for i in story_ids if self._cards.get(i)}

    async def story_carriers(self, story_ids: Sequence[int]) -> dict[int, list[SourceSighting]]:
        return {
            i: self._carrier_sightings(i) for i in sorted(set(story_ids)) if self._carriers.get(i)
        }

    @asynccontextmanager
    async def ingest_session(self) -> AsyncIterator[IngestSession]:
        # Each apply_ingest commits on its own (see IngestStore.ingest_session).
        yield self

    async def apply_ingest(
        self, feed: FeedState, plan: SupportsIngestBatch, outcome: PollOutcome, now: datetime
    ) -> dict[int, int]:
        batch = plan.ingest_batch()
        stamp = ts(now)
        first = max(self._last.get("stories", 0), max(self._stories, default=0)) + 1
        ids = {row.label: first + i for i, row in enumerate(batch.new_stories)}

        def story_id(ref: StoryRef) -> int:
            return ids[ref.value] if ref.is_new else ref.value

        keys = [(k.key.value, story_id(k.story), KeyKind(k.key.kind)) for k in batch.keys]
        cards = [(story_id(d.story), d.route) for d in batch.deliveries]
        # What SQLite's foreign keys refuse, refused before anything is written.
        known = self._stories.keys() | set(ids.values())
        if (
            (batch.new_stories and feed.id not in self._feeds)
            or any(sid not in known for sid, _ in cards)
            or any(row.story_id not in known for row in batch.sightings)
        ):
            error = "FOREIGN KEY constraint failed"
            failed = PollOutcome(
                ok=False, error=f"cannot save the poll: {error}", failures=feed.failures + 1
            )
            self._record_poll(feed.id, failed, now, baseline_done=None)
            raise StorageError(error)

        if ids:
            self._last["stories"] = first + len(ids) - 1
        for row in batch.new_stories:
            sid = ids[row.label]
            self._stories[sid] = StoryRow(
                sid,
                feed.id,
                as_stored(row.story),
                stamp,
                alertable=row.alertable,
                held=row.held,
                published_stamped=row.stamped,
            )
        for revision in batch.revisions:
            stored = self._stories.get(revision.story_id)
            if stored is None:
                continue
            new = revision.story
            stored.story = replace(
                stored.story,
                title=new.title,
                summary=new.summary,
                content=new.content,
                link=new.link,
                guid=new.guid,
                author=new.author,
                categories=tuple(new.categories),
                image=new.image,
            )
            stored.revision += int(revision.notify)
            stored.alertable = stored.alertable or revision.alertable
        for revision in batch.revisions:
            if revision.notify:
                for delivery_id in self._cards.get(revision.story_id, {}).values():
                    card = self._deliveries[delivery_id]
                    if (
                        card.status == DeliveryStatus.SENT
                        and not card.digest
                        and card.update_count < batch.max_updates
                    ):
                        card.update_pending, card.next_attempt_at = True, stamp
        for key, sid, kind in keys:
            self._keys.setdefault(key, {}).setdefault(sid, (kind, stamp))  # INSERT OR IGNORE
        for carrier in batch.carriers:  # INSERT OR IGNORE: the first sighting per feed stays
            carried = self._carriers.setdefault(story_id(carrier.story), {})
            carried.setdefault(carrier.feed_id, (carrier.feed_name, stamp, carrier.baseline))
        for sid, route in cards:
            existing = self._cards.get(sid, {}).get(route.target)
            if existing is not None:  # one card per story and destination: renew its terms
                card = self._deliveries[existing]
                card.matched, card.watchlists = tuple(route.matched), tuple(route.watchlists)
                card.thread = route.thread
                continue
            card = CardRow(
                self._next_id("deliveries"),
                sid,
                route.target,
                tuple(route.watchlists),
                route.subscriber,
                tuple(route.matched),
                next_attempt_at=stamp,
                created_at=stamp,
                thread=route.thread,
            )
            self._deliveries[card.id] = card
            self._cards.setdefault(sid, {})[route.target] = card.id
        for source in batch.sources:
            story = self._stories.get(source.story_id)
            if story is None or source.feed in story.sources:
                continue
            story.sources.append(source.feed)
            for delivery_id in self._cards.get(source.story_id, {}).values():
                card = self._deliveries[delivery_id]
                if (
                    card.status == DeliveryStatus.SENT
                    and not card.digest
                    and card.thread
                    and not card.update_pending
                ):
                    card.update_pending, card.next_attempt_at = True, stamp
        for seen in batch.sightings:  # INSERT OR IGNORE
            kept = self._sightings.setdefault(seen.story_id, {})
            kept.setdefault((seen.feed, seen.link or ""), (seen.title, stamp))
        self._record_poll(feed.id, outcome, now, baseline_done=True)
        return ids

    async def recent_titles(self, since: datetime, *, limit: int) -> list[tuple[int, str]]:
        start = ts(since)
        found = [s for s in self._stories.values() if s.first_seen >= start]
        found.sort(key=lambda s: (s.first_seen, s.id), reverse=True)
        return [(s.id, s.story.title) for s in limited(found, limit)]

    async def sightings(self, story_id: int) -> list[Sighting]:
        kept = self._sightings.get(story_id, {})
        found = [
            Sighting(story_id, feed, title, link or None, moment(at))
            for (feed, link), (title, at) in kept.items()
        ]
        return sorted(found, key=lambda s: (s.seen_at, s.feed, s.link or ""))

    async def recent_stories(
        self,
        since: datetime,
        *,
        limit: int = 5000,
        feed: str | None = None,
        after: StoredStory | None = None,
    ) -> list[StoredStory]:
        start = ts(since)
        found = [s for s in self._stories.values() if s.first_seen >= start]
        if after is not None:
            seen = ts(after.first_seen)
            found = [s for s in found if (s.first_seen, s.id) < (seen, after.id)]
        if feed is not None:
            found = [s for s in found if nocase(s.story.feed) == nocase(feed)]
        found.sort(key=lambda s: (s.first_seen, s.id), reverse=True)
        return [s.stored() for s in limited(found, limit)]

    async def count_stories(self) -> int:
        return len(self._stories)

    async def prune(
        self, now: datetime, *, stories: timedelta, keys: timedelta, window: timedelta
    ) -> tuple[int, int]:
        old = [s.id for s in self._stories.values() if s.first_seen < ts(now - stories)]
        for story_id in old:
            del self._stories[story_id]
            self._sightings.pop(story_id, None)
            self._carriers.pop(story_id, None)  # ON DELETE CASCADE
            for delivery_id in self._cards.pop(story_id, {}).values():
                del self._deliveries[delivery_id]  # ON DELETE CASCADE
        cutoff = {
            KeyKind.GUID: ts(now - keys),
            KeyKind.URL: ts(now - keys),
            KeyKind.TITLE_DATE: ts(now - keys),
            KeyKind.TITLE: ts(now - window),
            KeyKind.SHINGLE: ts(now - window),
        }
        keys_gone = 0
        for key in list(self._keys):
            holders = self._keys[key]
            for sid, (kind, seen) in list(holders.items()):
                if kind in cutoff and seen < cutoff[kind]:
                    del holders[sid]
                    keys_gone += 1
            if not holders:
                del self._keys[key]
        return len(old), keys_gone
