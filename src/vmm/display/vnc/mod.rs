//! A VNC (RFB 3.8) server for one guest's screen.
