"""The annotator's queue at its path before the house redesign (`annotation.queue`),
for scripts and notebooks written against it: the same functions as
`annotation.labelling.queue`, where new code imports them from. Nothing in the app
imports this module."""

from annotation.labelling.queue import *  # noqa: F403
