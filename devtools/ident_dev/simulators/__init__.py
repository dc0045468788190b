"""Local HTTP simulators of the external services, shared by tests and the demo platform."""
