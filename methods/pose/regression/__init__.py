"""Single-stage multi-person pose regression with OKSFilter and PSM (paper 002: Miao, Lin, Cao, "Multi-Person Pose
Regression via Pose Filtering and Scoring"; its public form is SMPR, methods.md section 4).

``model.py`` the network, ``targets.py`` FCOS-style location targets with centre sampling, ``losses.py`` OKS,
OKSFilter and the loss terms, ``decode.py`` poses from locations + offsets, pseudo boxes and soft-NMS,
``plugins.py`` the table switches.
"""
