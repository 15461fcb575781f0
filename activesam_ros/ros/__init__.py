"""The ROS room: everything that knows ROS 2 messages, topics or bags.

``messages``, ``imgconv`` and ``topics`` work on message *fields* (rclpy's
classes and rosbags' alike); ``rosbags_types`` and ``bagio`` use rosbags;
``node``, ``node_params`` and ``diagnostics`` are the rclpy node and its
ROS-agnostic parts. Only ``node`` imports rclpy.
"""
