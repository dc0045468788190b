"""Who the test alerts config sends to: the simulators' chats, the sink's addresses."""

BOT_TOKEN = "7012345678:demo-telegram-key-for-tests"
DATA_CHAT = "-1001000000001"
MSK_CHAT = "-1001000000002"
DEFAULT_CHAT = "-1001000000003"
SMTP_LOGIN, SMTP_PASSWORD = "alerts@clinic.example", "smtp-pass-1"
DATA_EMAIL = "data-team@clinic.example"
MSK_EMAIL = "msk-desk@clinic.example"
