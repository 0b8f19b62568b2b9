"""The handlers of feedparser.namespaces._base (RSS, Atom and CDF elements), each named
after the one it mirrors: start_title is _start_title."""

from __future__ import annotations

from feedparser.datetimes import _parse_date
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

from bot.feeds.fastparse.state import _State
from bot.feeds.fastparse.values import _enforce_href, _join, _map_content_type, _Refused, _set

_HTML_TYPES = frozenset(_FeedParserMixin.html_types)


class _Handlers(_State):
    """feedparser.namespaces._base.Namespace: the RSS, Atom and CDF handlers."""

    def _cdf_common(self, attrs: dict[str, str]) -> None:
        if "lastmod" in attrs or "href" in attrs:
            raise _Refused("CDF attributes")

    def start_rss(self, attrs: dict[str, str]) -> None:
        pass  # only the version, which nothing read here depends on (XHTML is refused)

    def start_channel(self, attrs: dict[str, str]) -> None:
        self.infeed = 1
        self._cdf_common(attrs)

    def start_feed(self, attrs: dict[str, str]) -> None:
        self.infeed = 1

    def end_channel(self) -> None:
        self.infeed = 0

    def start_image(self, attrs: dict[str, str]) -> None:
        context = self.context()
        if not self.inentry:
            context.setdefault("image", {})
        self.inimage = 1
        self.title_depth = -1
        self.push("image", 0)

    def end_image(self) -> None:
        self.pop("image")
        self.inimage = 0

    def start_textinput(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("textinput", {})
        self.intextinput = 1
        self.title_depth = -1
        self.push("textinput", 0)

    def end_textinput(self) -> None:
        self.pop("textinput")
        self.intextinput = 0

    def start_author(self, attrs: dict[str, str]) -> None:
        self.inauthor = 1
        self.push("author", 1)
        self.context().setdefault("authors", []).append({})

    def end_author(self) -> None:
        self.pop("author")
        self.inauthor = 0
        self.sync_author_detail()

    def start_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self.context().setdefault("contributors", []).append({})
        self.push("contributor", 0)

    def end_contributor(self) -> None:
        self.pop("contributor")
        self.incontributor = 0

    def start_name(self, attrs: dict[str, str]) -> None:
        self.push("name", 0)

    def end_name(self) -> None:
        value = self.pop("name")
        if self.inauthor:
            self.save_author("name", value)
        elif self.incontributor:
            self.save_contributor("name", value)
        elif self.intextinput:
            self.context()["name"] = value

    def start_width(self, attrs: dict[str, str]) -> None:
        self.push("width", 0)

    def end_width(self) -> None:
        self._dimension("width")

    def start_height(self, attrs: dict[str, str]) -> None:
        self.push("height", 0)

    def end_height(self) -> None:
        self._dimension("height")

    def _dimension(self, key: str) -> None:
        value = self.pop(key)
        if value is None:
            raise _Refused("int(None): feedparser fails here")
        try:
            number = int(value)
        except ValueError:
            number = 0
        if self.inimage:
            self.context()[key] = number

    def start_url(self, attrs: dict[str, str]) -> None:
        self.push("href", 1)

    def end_url(self) -> None:
        value = self.pop("href")
        if self.inauthor:
            self.save_author("href", value)
        elif self.incontributor:
            self.save_contributor("href", value)

    def start_email(self, attrs: dict[str, str]) -> None:
        self.push("email", 0)

    def end_email(self) -> None:
        value = self.pop("email")
        if self.inauthor:
            self.save_author("email", value)
        elif self.incontributor:
            self.save_contributor("email", value)

    def start_subtitle(self, attrs: dict[str, str]) -> None:
        self.push_content("subtitle", attrs, "text/plain", 1)

    def end_subtitle(self) -> None:
        self.pop_content("subtitle")

    def start_rights(self, attrs: dict[str, str]) -> None:
        self.push_content("rights", attrs, "text/plain", 1)

    def end_rights(self) -> None:
        self.pop_content("rights")

    def start_info(self, attrs: dict[str, str]) -> None:
        self.push_content("info", attrs, "text/plain", 1)

    def end_info(self) -> None:
        self.pop_content("info")

    def start_item(self, attrs: dict[str, str]) -> None:
        self.entries.append({})
        self.entry_depths.append({})
        self.push("item", 0)
        self.inentry = 1
        self.guidislink = False
        self.title_depth = -1
        about = attrs.get(self.rdf_about)
        if about:
            _set(self.context(), "id", about)
        self._cdf_common(attrs)

    def end_item(self) -> None:
        self.pop("item")
        self.inentry = 0
        self.has_content = 0

    def start_language(self, attrs: dict[str, str]) -> None:
        self.push("language", 1)

    def end_language(self) -> None:
        self.pop("language")  # it becomes feedparser's current language: nothing read here

    def start_webmaster(self, attrs: dict[str, str]) -> None:
        self.push("publisher", 1)

    def end_webmaster(self) -> None:
        self.pop("publisher")
        self.sync_author_detail("publisher")

    def start_published(self, attrs: dict[str, str]) -> None:
        self.push("published", 1)

    def end_published(self) -> None:
        self.save("published_parsed", _parse_date(self.pop("published")), overwrite=True)

    def start_updated(self, attrs: dict[str, str]) -> None:
        self.push("updated", 1)

    def end_updated(self) -> None:
        self.save("updated_parsed", _parse_date(self.pop("updated")), overwrite=True)

    def start_created(self, attrs: dict[str, str]) -> None:
        self.push("created", 1)

    def end_created(self) -> None:
        self.save("created_parsed", _parse_date(self.pop("created")), overwrite=True)

    def start_category(self, attrs: dict[str, str]) -> None:
        self.add_tag(
            attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label")
        )
        self.push("category", 1)

    def end_category(self) -> None:
        value = self.pop("category")
        if not value:
            return
        tags = self.context()["tags"]
        if value and len(tags) and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.add_tag(value, None, None)

    def start_tags(self, attrs: dict[str, str]) -> None:
        self.push("tags", 1)

    def end_tags(self) -> None:
        value = self.pop("tags")
        if value is None:
            return  # as end_media_keywords
        for term in value.split(","):
            self.add_tag(term.strip(), None, None)

    def start_cloud(self, attrs: dict[str, str]) -> None:
        self.context()["cloud"] = attrs

    def start_link(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("rel", "alternate")
        if attrs["rel"] == "self":
            attrs.setdefault("type", "application/atom+xml")
        else:
            attrs.setdefault("type", "text/html")
        context = self.context()
        attrs = _enforce_href(attrs)
        if "href" in attrs:
            attrs["href"] = _join(self.base, attrs["href"])
        expecting_text = self.infeed or self.inentry or self.insource
        context.setdefault("links", [])
        if not (self.inentry and self.inimage):
            context["links"].append(dict(attrs))
        if "href" in attrs:
            if attrs.get("rel") == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
                context["link"] = attrs["href"]
        else:
            self.push("link", expecting_text)

    def end_link(self) -> None:
        self.pop("link")

    def start_guid(self, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        self.push("id", 1)

    def end_guid(self) -> None:
        value = self.pop("id")
        self.save("guidislink", self.guidislink and "link" not in self.context())
        if self.guidislink:
            self.save("link", value)

    def start_title(self, attrs: dict[str, str]) -> None:
        self.push_content(
            "title", attrs, "text/plain", self.infeed or self.inentry or self.insource
        )

    def end_title(self) -> None:
        value = self.pop_content("title")
        if value:
            self.title_depth = self.depth

    def start_description(self, attrs: dict[str, str]) -> None:
        # A description after a summary (and before any content) is read as content.
        if "summary" in self.context() and not self.has_content:
            self.summary_key = "content"
            self.start_content(attrs)
        else:
            self.push_content(
                "description", attrs, "text/html", self.infeed or self.inentry or self.insource
            )

    def end_description(self) -> None:
        if self.summary_key == "content":
            self.end_content()
        else:
            self.pop_content("description")
        self.summary_key = None

    def start_summary(self, attrs: dict[str, str]) -> None:
        # As start_description: a second summary is read as content.
        if "summary" in self.context() and not self.has_content:
            self.summary_key = "content"
            self.start_content(attrs)
        else:
            self.summary_key = "summary"
            self.push_content("summary", attrs, "text/plain", 1)

    def end_summary(self) -> None:
        if self.summary_key == "content":
            self.end_content()
        else:
            self.pop_content(self.summary_key or "summary")
        self.summary_key = None

    def start_content(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/plain", 1)
        self.push("content", 1)  # twice, as feedparser does: the outer one is never popped

    def start_content_encoded(self, attrs: dict[str, str]) -> None:
        self.has_content = 1
        self.push_content("content", attrs, "text/html", 1)

    def end_content(self) -> None:
        if self.content_type is None:
            raise _Refused("content ending without its parameters")
        # Read before pop_content, which clears the content type.
        copy_to_summary = self.content_type in ("text/plain", *_HTML_TYPES)
        value = self.pop_content("content")
        if copy_to_summary:
            self.save("summary", value)

    def start_generator(self, attrs: dict[str, str]) -> None:
        if attrs:
            attrs = _enforce_href(attrs)
            if "href" in attrs:
                attrs["href"] = _urljoin(self.base, attrs["href"])
        self.context()["generator_detail"] = dict(attrs)
        self.push("generator", 1)

    def end_generator(self) -> None:
        value = self.pop("generator")
        context = self.context()
        if "generator_detail" in context:
            context["generator_detail"]["name"] = value

    def start_enclosure(self, attrs: dict[str, str]) -> None:
        attrs = _enforce_href(attrs)
        context = self.context()
        attrs["rel"] = "enclosure"
        context.setdefault("links", []).append(dict(attrs))

    def start_source(self, attrs: dict[str, str]) -> None:
        if "url" in attrs:
            self.source["href"] = attrs["url"]
        self.push("source", 1)
        self.insource = 1
        self.title_depth = -1

    def end_source(self) -> None:
        self.insource = 0
        value = self.pop("source")
        if value:
            self.source["title"] = value
        self.context()["source"] = dict(self.source)
        self.source.clear()
