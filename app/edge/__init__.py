"""The edge's side: boot from the local replica, the uplink to the master."""
