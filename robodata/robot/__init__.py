"""Robot models (URDF/MJCF via pinocchio): joint-limit validation, kinematics, action spaces."""

from robodata.robot.model import JointInfo, JointNameError, RobotModel, RobotModelError

__all__ = ["JointInfo", "JointNameError", "RobotModel", "RobotModelError"]
