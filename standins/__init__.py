"""Local stand-ins for the providers (Twilio, WeChat, SMTP), speaking their real protocols."""
