"""The API shapes that several route modules share: a form option, a job's status fields, a deletion."""

from __future__ import annotations

from typing import Any, List, Literal, Optional

from pydantic import BaseModel, Field


class OptionField(BaseModel):
    """One option of a job form (``neuralens.options.web_fields``): the page builds its inputs from these."""

    name: str
    kind: str
    default: Any
    nullable: bool
    choices: Optional[List[Any]]
    minimum: Optional[float]
    maximum: Optional[float]
    above: Optional[float]
    help: str
    none_help: Optional[str]


class JobStatusOut(BaseModel):
    """What every kind of job reports first (``jobs.status_fields``); each job's model adds its own."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    version: int = Field(..., description="bumped on every change")
    created: float
    started: Optional[float]
    finished: Optional[float]


class Deleted(BaseModel):
    deleted: str
