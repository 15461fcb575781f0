"""The node's spin ends cleanly however a shutdown meets rclpy's executor.

A SIGINT shuts the context down from rclpy's signal handler. When that lands
between the executor's check of the context and its building of the next wait
set, rcl refuses the wait set with RCLError. Here a real executor meets exactly
that: a waitable shuts the context down while the executor enters it, after
the check and before the wait set. Needs rclpy (a sourced ROS 2); skipped
without it.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source a ROS 2 install")

# isort: split

from rclpy.callback_groups import ReentrantCallbackGroup  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy  # noqa: E402
from rclpy.waitable import NumberOfEntities, Waitable  # noqa: E402

from activesam_ros.ros.node import spin_until_shutdown  # noqa: E402


class ShutdownOnEnter(Waitable):
    """Shuts its context down when an executor starts building a wait set with it."""

    def __init__(self, context: Context):
        super().__init__(ReentrantCallbackGroup())
        self.context = context
        self.entered = 0

    def __enter__(self):
        self.entered += 1
        self.context.try_shutdown()

    def is_ready(self, wait_set):
        return False

    def take_data(self):
        return None

    async def execute(self, taken_data):
        return None

    def get_num_entities(self):
        return NumberOfEntities()

    def add_to_wait_set(self, wait_set):
        pass


@pytest.fixture
def context():
    context = Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


def _executor_with_shutdown_inside_the_wait(context: Context):
    node = rclpy.create_node("activesam_stop_test", context=context)
    waitable = ShutdownOnEnter(context)
    node.add_waitable(waitable)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    return executor, node, waitable


def test_rcl_refuses_the_wait_set_when_the_shutdown_lands_inside_it(context):
    """The race itself, on the bare executor: what the node's spin must absorb."""
    executor, node, waitable = _executor_with_shutdown_inside_the_wait(context)
    with pytest.raises(_rclpy.RCLError, match="context is not valid"):
        executor.spin()
    assert waitable.entered == 1
    executor.shutdown(timeout_sec=0)
    node.destroy_node()


def test_the_node_spin_ends_cleanly_when_the_shutdown_lands_inside_the_wait(context):
    executor, node, waitable = _executor_with_shutdown_inside_the_wait(context)
    spin_until_shutdown(executor)  # returns: a stop, not a crash
    assert waitable.entered == 1 and not context.ok()
    executor.shutdown(timeout_sec=0)
    node.destroy_node()


def test_an_error_while_the_context_is_up_still_raises(context):
    class Broken(MultiThreadedExecutor):
        def spin(self):
            raise _rclpy.RCLError("a wait set failed for another reason")

    with pytest.raises(_rclpy.RCLError, match="another reason"):
        spin_until_shutdown(Broken(num_threads=2, context=context))
    assert context.ok()
