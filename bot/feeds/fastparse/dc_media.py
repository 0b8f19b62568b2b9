"""The handlers of feedparser.namespaces.dc and .mediarss that are not aliases of the base
ones (the aliases are in walk.py)."""

from __future__ import annotations

from bot.feeds.fastparse.handlers import _Handlers


class _DcMediaHandlers(_Handlers):
    """feedparser.namespaces.dc.Namespace and .mediarss.Namespace, where they are more than
    an alias."""

    def start_dc_contributor(self, attrs: dict[str, str]) -> None:
        self.incontributor = 1
        self.context().setdefault("contributors", []).append({})
        self.push("name", 0)

    def end_dc_contributor(self) -> None:
        self.end_name()
        self.incontributor = 0

    def start_media_category(self, attrs: dict[str, str]) -> None:
        attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
        self.start_category(attrs)

    def end_media_keywords(self) -> None:
        value = self.pop("media_keywords")
        if value is None:
            return  # feedparser: AttributeError, then an unknown end tag whose pop is a no-op
        for term in value.split(","):
            if term.strip():
                self.add_tag(term.strip(), None, None)

    def end_media_title(self) -> None:
        title_depth = self.title_depth
        self.end_title()
        self.title_depth = title_depth

    def start_media_group(self, attrs: dict[str, str]) -> None:
        pass

    def start_media_content(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_content", []).append(attrs)

    def start_media_thumbnail(self, attrs: dict[str, str]) -> None:
        context = self.context()
        context.setdefault("media_thumbnail", [])
        self.push("url", 1)
        context["media_thumbnail"].append(attrs)

    def end_media_thumbnail(self) -> None:
        url = self.pop("url")
        context = self.context()
        if url is not None and url.strip() and "url" not in context["media_thumbnail"][-1]:
            context["media_thumbnail"][-1]["url"] = url

    def start_media_credit(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_credit", []).append(attrs)
        self.push("credit", 1)

    def end_media_credit(self) -> None:
        credit = self.pop("credit")
        if credit is not None and credit.strip():
            self.context()["media_credit"][-1]["content"] = credit

    def start_media_rating(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_rating", attrs)
        self.push("rating", 1)

    def end_media_rating(self) -> None:
        rating = self.pop("rating")
        if rating is not None and rating.strip():
            self.context()["media_rating"]["content"] = rating

    def start_media_license(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_license", attrs)
        self.push("license", 1)

    def end_media_license(self) -> None:
        value = self.pop("license")
        if value is not None and value.strip():
            self.context()["media_license"]["content"] = value

    def start_media_restriction(self, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_restriction", attrs)
        self.push("restriction", 1)

    def end_media_restriction(self) -> None:
        value = self.pop("restriction")
        if value is not None and value.strip():
            self.context()["media_restriction"]["content"] = [
                code.strip().lower() for code in value.split(" ")
            ]
