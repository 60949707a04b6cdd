"""The paper's recipe of each ``full`` table, and the deviations of a run from it.

A recipe is the configuration the paper trained and tested with: data and splits, backbone, input size, schedule,
batch, learning rate, initialisation and test-time options, each setting with its source (paper, section or table,
or the reference code the paper names) and, where the papers do not state a value, ``known: false`` and why
crowdbench chose it. One file per task family, ``results/recipes/<task>.yaml``, holds the settings every table of
that family shares; a table spec's ``recipe:`` block holds what is specific to one table. The ``full`` profile is
built from these files (``bench/profiles.py``), so the defaults and the reviewed recipe cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RecipeSetting(BaseModel):
    """One setting of a paper's recipe."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="the value (as a --set value would be given)")
    source: str = Field(description="where it comes from: 'paper 001 section 4.2', 'CrowdDet config.py', ...")
    known: bool = Field(True, description="false: the papers do not state it; the source says why this value")


class InitSetting(BaseModel):
    """A pretrained initialisation the paper starts from (a weights path setting that must be given)."""

    model_config = ConfigDict(extra="forbid")

    weights: str = Field(description="what the paper initialises from, e.g. 'ImageNet ResNet-50'")
    source: str


class Recipe(BaseModel):
    """``results/recipes/<task>.yaml``: the shared recipe of one task family."""

    model_config = ConfigDict(extra="forbid")

    task: str
    title: str
    settings: dict[str, RecipeSetting] = Field(description="dotted RunConfig key -> the paper's value and source")
    init: dict[str, InitSetting] = Field(default_factory=dict, description="weights key -> what the paper used")
    notes: str = ""
