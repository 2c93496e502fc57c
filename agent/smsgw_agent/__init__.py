"""smsgw-agent: the device side of the SMS gateway's device protocol (jobs, reports, incoming SMS,
heartbeats), with a Termux backend for Android phones and a simulator for local runs and tests."""
from smsgw_agent.agent import Agent
from smsgw_agent.config import AgentConfig

__all__ = ["Agent", "AgentConfig"]
__version__ = "0.1.0"
