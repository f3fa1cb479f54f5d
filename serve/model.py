"""The model being served, as the handlers see it: its name in the API and its version."""

from dataclasses import dataclass

from ablate.card import ExportedModel, ModelCard
from serve.errors import ApiError

__all__ = ["ServedModel"]


@dataclass(frozen=True)
class ServedModel:
    name: str  # the model's name in the API (`ablate serve --name`)
    model: ExportedModel  # verified and self-tested

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def card(self) -> ModelCard:
        return self.model.card

    def check(self, name: str, version: str | None = None) -> None:
        """A 404 unless `name` (and `version`, if given) are this model's.

        The message never quotes the client's name or version back."""
        if name != self.name:
            raise ApiError(404, f"no such model; this server serves {self.name!r}")
        if version is not None and version != self.version:
            raise ApiError(404, f"no such version; model {self.name!r} has version "
                           f"{self.version!r}")
