"""MQTT: CAP input, QoS 1 delivery, retained status and active alerts, the embedded broker."""
