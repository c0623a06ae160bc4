"""ROS 2 without ROS: message definitions and an MCAP writer for recordings made by robodata's simulator."""
