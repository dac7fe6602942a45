"""The add-on's operators, one a file."""

from .cancel import INR_OT_cancel
from .check_worker import INR_OT_check_worker
from .extract_mesh import INR_OT_extract_mesh
from .fit_image import INR_OT_fit_image
from .fit_mesh import INR_OT_fit_mesh
from .resample_image import INR_OT_resample_image

classes = (
    INR_OT_fit_mesh,
    INR_OT_extract_mesh,
    INR_OT_cancel,
    INR_OT_check_worker,
    INR_OT_fit_image,
    INR_OT_resample_image,
)
