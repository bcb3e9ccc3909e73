"""``lev agent``: a device's worker (docs/distributed.md).

An :class:`Agent` enrols once (:func:`save_enrolment` keeps the device token 0600 in
``LEV_HOME``), reports its machine's facts (:func:`gather_facts`) and heartbeats to the server,
and is a Temporal worker on its device's and pools' task queues, whose activities are
registered by name (``agent.facts``, ...)."""

from levrt.agent._agent import Agent
from levrt.agent._enrolment import AgentError, load_enrolment, save_enrolment
from levrt.agent._facts import gather_facts

__all__ = ["Agent", "AgentError", "gather_facts", "load_enrolment", "save_enrolment"]
